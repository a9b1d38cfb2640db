"""``python -m minitransformer ...`` is the same as the ``minitransformer`` console script."""
from minitransformer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
