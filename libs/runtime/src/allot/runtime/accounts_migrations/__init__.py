"""The account directory's own migrations (allot.runtime.accounts), applied into the schema of every service that
consumes account.profiled (component ``accounts``), before the service's own."""
