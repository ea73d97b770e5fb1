"""Executor service: applies approved budget actions on ad platforms exactly once."""
