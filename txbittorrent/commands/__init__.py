"""One module per ``txbittorrent`` subcommand: ``add_parser(subparsers)`` and ``run(args)``."""
