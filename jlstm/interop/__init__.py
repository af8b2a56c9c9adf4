"""Weight conversion to and from other LSTM implementations (imported on demand)."""
