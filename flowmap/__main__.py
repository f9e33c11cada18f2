"""``python -m flowmap``: the same command line as the ``flowmap`` script."""

from .cli import main

if __name__ == "__main__":
    main()
