import sys

from txbittorrent.cli import main

sys.exit(main())
