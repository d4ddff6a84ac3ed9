"""`python -m sslab ...` (and `torchrun -m sslab ...`): the `sslab` command."""
from sslab.cli import entry

if __name__ == "__main__":
    entry()
