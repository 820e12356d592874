"""Entry points: the ``lifecycle`` command and the composition root that builds every
component (write side, Kafka edge, read side, audit) from one ``Settings``."""
