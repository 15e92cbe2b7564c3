"""The ``fastcnn`` command line: ``fastcnn info`` (more subcommands register below)."""
import argparse
import sys


def _cmd_info(args):
    import fastcnn
    fastcnn.show_config()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastcnn", description="Train and run Keras-style CNNs on fastcnn's C kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="print version, compiler, OpenMP, SIMD path and threads")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
