"""Importing EZproxy ``config.txt`` stanzas into vendor rules (``rules import-ezproxy``).

Contract: a pipeline of pure steps and one thin shell.
``directives`` turns file text into directive records (file:line, canonical names);
``stanzas`` groups them into database stanzas with their position-dependent context (Group,
Option, IP rules); ``translate`` turns one stanza into a plain dict in the vendor-rule shape
plus findings; ``summary`` assembles the rule set across stanzas (ids, host claims,
validation) and renders the summary; ``importer`` reads files, follows ``IncludeFile``,
writes one YAML file per rule and re-checks the result with the loader of ``rules check``.
Not here: the rule schema (proxy/core/rules.py), EZproxy-style links (the web portal).
"""
