"""Analytics service: usage and time-range analytics."""
