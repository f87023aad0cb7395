"""TAMS HTTP API gateway"""
