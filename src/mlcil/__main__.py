"""``python -m mlcil``: the same command line as the ``mlcil`` script."""

from mlcil.cli import main

if __name__ == "__main__":
    main(prog_name="mlcil")
