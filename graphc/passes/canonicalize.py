"""(rules being written)"""

from graphc.passes.patterns import RuleTable

RULES = RuleTable("canonicalize", [])
