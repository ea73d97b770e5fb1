"""Rules schema: rules, executions, actions and outcomes, audit log, metric projection."""
