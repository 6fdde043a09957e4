"""One torrent's peers: the swarm, its downloader and uploader, peer state and
the address book."""
