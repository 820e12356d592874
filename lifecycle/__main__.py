from lifecycle.cli import run

run()
