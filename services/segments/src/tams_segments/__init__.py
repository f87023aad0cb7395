"""Segments service: storage allocation, segments, objects, deletion requests."""
