"""Operations: Prometheus metrics and logging."""
