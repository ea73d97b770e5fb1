"""Runtime tables every service schema gets: processed events, outbox, schedule claims."""
