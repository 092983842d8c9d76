"""Where data comes from: Kafka offsets, the new-data check, replaying historical files."""
