"""``python -m txbittorrent``: the command line (``commands.cli``)."""

from txbittorrent.commands.cli import console_main

console_main()
