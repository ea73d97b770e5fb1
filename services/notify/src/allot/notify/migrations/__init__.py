"""Notify schema: channels (secrets sealed), subscriptions, deliveries and every delivery attempt."""
