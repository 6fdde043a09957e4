import sys

from txbittorrent.commands.cli import main

sys.exit(main())
