"""``python -m schedopt``: the command line, exactly as the ``schedopt`` console script runs it."""

from schedopt.cli import main

if __name__ == "__main__":
    main()
