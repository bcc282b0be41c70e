include "delta_rule.pyx"
