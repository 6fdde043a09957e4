"""The data on disk: safe file access, the store's thread pool, hash checks,
the upload cache, resume files and creating torrents."""
