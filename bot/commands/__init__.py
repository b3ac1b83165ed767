"""The `/usage` command: `grammar.parse_command` turns its text into a typed command (`types`),
and `answer.UsageBot` answers it. grammar.py's docstring lists which module parses each command word.
"""
