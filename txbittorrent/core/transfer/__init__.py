"""What moves between peers and when: the piece picker, the choker and rate buckets."""
