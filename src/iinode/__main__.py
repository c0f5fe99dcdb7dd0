from iinode.cli.main import run

run()
