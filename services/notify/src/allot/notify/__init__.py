"""Allot notify service: delivers notification.requested to each workspace's Slack, email and webhook channels."""
