"""``python -m rnnkit``: how rnnkit was built and what it runs on (``rk.show_config()``);
``python -m rnnkit --version``: the version alone."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rnnkit", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    import rnnkit

    if args.version:
        print(rnnkit.__version__)
    else:
        rnnkit.show_config()


if __name__ == "__main__":
    main()
