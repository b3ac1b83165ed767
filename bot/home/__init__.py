"""The App Home tab: Twilio's figures (cached, at most one fetch a minute) and the bot's records,
rendered as one Home view. Knows nothing of Slack's transport: handlers/home.py publishes it."""
