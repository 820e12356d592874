from lifecycle.entrypoints.cli import run

run()
