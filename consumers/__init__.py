"""The Kafka edge: touchpoint consumer, dead letters, outbound relay, embedded broker."""
