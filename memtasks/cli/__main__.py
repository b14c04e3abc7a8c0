"""``python -m memtasks.cli ...``: the same as the ``memtasks`` console script."""

from memtasks.cli import main

if __name__ == "__main__":
    main()
