"""Notifications: a JSON POST to each configured webhook (Teams, Slack, generic) when a job needs a person.

``channels`` reads ``REMEDIATION_NOTIFY_URLS``; ``messages`` builds what is said and each format's body;
``delivery`` posts it with bounded retries; ``notifier`` decides which transitions are worth a message.
Nothing here is imported unless notifications are configured.
"""
