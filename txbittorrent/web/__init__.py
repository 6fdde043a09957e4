"""HTTP for txbittorrent: twisted.web resources."""
