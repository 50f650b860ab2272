"""What is kept on disk or aggregated from it: the recorder (events to Parquet) and OHLCV bars."""
