"""Sandbox ad platform: a pure, seeded simulation of how campaigns deliver."""
