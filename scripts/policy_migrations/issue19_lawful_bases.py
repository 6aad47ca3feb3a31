# ruff: noqa: E501  -- the policy's own sentences (questions, messages) are kept whole, as in the JSON
"""Issue 19's policy migration: 2018.1 / 2024.1 (gateway/policies/archive/) → 2018.2 / 2024.2.

Kept so the policy files can be regenerated after another change to the 2018.1/2024.1 documents is merged (the
editions are large JSON, and a hand merge of them is error-prone):

    cp gateway/policies/archive/hmg-2018@2018.1.json gateway/policies/hmg-2018.json
    cp gateway/policies/archive/dfe-2024@2024.1.json gateway/policies/dfe-2024.json
    python scripts/policy_migrations/issue19_lawful_bases.py gateway/policies/hmg-2018.json gateway/policies/dfe-2024.json

Run it on the superseded documents only: it is not idempotent.
"""

import copy
import json
import sys

LB = ["rules", "1_lawful_basis"]
OPEN = ["rules", "2_openness"]
TRANS = ["rules", "4_transparency"]
SAFE = ["rules", "5_safety_wellbeing"]
NEC = ["rules", "6_necessary_proportionate"]
REC = ["rules", "7_record"]

R18_2 = ["cannot_give", "not_reasonably_obtainable", "would_prejudice_protection"]
PUBLIC_CONDITIONS = ["p6_statutory_purposes", "p10_preventing_crime", "p18_safeguarding", "p19_economic_wellbeing"]
SPECIAL = [
    "health",
    "mental_health",
    "sexual_life",
    "ethnicity",
    "religion",
    "genetic",
    "biometric",
    "political_opinions",
    "trade_union_membership",
]


def cond(path, leaf):
    node = leaf
    for key in reversed(path):
        node = {"type": "object", "required": [key], "properties": {key: node}}
    return node


def put(path, schema):
    node = schema
    for key in reversed(path):
        node = {"properties": {key: node}}
    return node


SECTION_OF_RULE = {}


def err(keyword, code, message, rule):
    # the rule is named by the section whose test failed, so a renumbered edition needs no change here
    return {keyword: {"code": code, "message": message, "rule_of": SECTION_OF_RULE[rule]}}


def req(path, names, code, message, rule):
    return put(path, {"required": names, "x-errors": err("required", code, message, rule)})


def all_of(*conds):
    return conds[0] if len(conds) == 1 else {"allOf": list(conds)}


def yes_no(rule, title, question, description=None):
    node = {
        "x-golden-rule": rule,
        "title": title,
        "x-question": question,
        "type": "boolean",
        "x-labels": {"true": "Yes", "false": "No"},
    }
    if description:
        node = {**node, "description": description}
    return node


def patch(doc):
    rules = doc["properties"]["rules"]["properties"]
    lb = rules["1_lawful_basis"]["x-golden-rule"]
    r2 = rules["2_openness"]["x-golden-rule"]
    r4 = rules["4_transparency"]["x-golden-rule"]
    r5 = rules["5_safety_wellbeing"]["x-golden-rule"]
    r6 = rules["6_necessary_proportionate"]["x-golden-rule"]
    rec = doc["properties"]["decision"]["x-golden-rule"]
    SECTION_OF_RULE.clear()
    for key in reversed(list(rules)):
        SECTION_OF_RULE[rules[key]["x-golden-rule"]] = "rules." + key
    SECTION_OF_RULE[lb] = "rules.1_lawful_basis"

    meta = doc["x-policy"]
    old = meta["version"]
    meta["version"] = old.rsplit(".", 1)[0] + ".2"
    doc["$id"] = doc["$id"].rsplit(":", 1)[0] + ":" + meta["version"]
    meta["supersedes"] = [old]

    doc["$defs"]["date"] = {
        "description": "A calendar date (YYYY-MM-DD), e.g. 2026-12-03.",
        "type": "string",
        "maxLength": 10,
        "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$(?!\\n)",
        "x-errors": {
            "pattern": {"code": "invalid_date", "message": "must be a date such as 2026-12-03"},
            "maxLength": {"code": "invalid_date", "message": "must be a date such as 2026-12-03"},
        },
    }

    # -- special categories in full (Article 9(1)) and sexual abuse ---------------------------------------
    cats = doc["properties"]["data_categories"]["items"]
    labels = cats["x-labels"]
    new_cats = {
        "genetic": "Genetic (special category)",
        "biometric": "Biometric, used to identify someone (special category)",
        "political_opinions": "Political opinions (special category)",
        "trade_union_membership": "Trade union membership (special category)",
        "sexual_abuse": "Information about sexual abuse",
    }
    at = cats["enum"].index("religion") + 1
    cats["enum"][at:at] = list(new_cats)
    labels_new = {}
    for k in cats["enum"]:
        labels_new[k] = labels.get(k) or new_cats[k]
    cats["x-labels"] = labels_new
    doc["properties"]["data_categories"]["maxItems"] = 20
    for block in doc["allOf"]:
        contains = block.get("if", {}).get("properties", {}).get("data_categories", {}).get("contains", {})
        if contains.get("enum") and "health" in contains["enum"]:
            contains["enum"] = list(SPECIAL)
            e = block["then"]["properties"]["rules"]["properties"]["1_lawful_basis"]["x-errors"]["required"]
            e["message"] = (
                "must be filled in because special category information (health, mental health, sex life or sexual "
                "orientation, ethnicity, religion or belief, genetic, biometric, political opinions or trade union "
                "membership) is being shared: UK GDPR Article 9 needs its own condition"
            )

    # -- per-person consent, adult-at-risk limbs, economic risk ---------------------------------------------
    item = doc["properties"]["subjects"]["items"]
    openness_reasons = rules["2_openness"]["properties"]["not_sought_reason"]
    item["properties"]["consent"] = {
        "x-golden-rule": r2,
        "title": "This person's agreement",
        "description": "Optional, per person: whose agreement was sought for this person's information, and what they said. Leave it out when the answers under rules 2 and 4 apply to everyone. One person's agreement never covers another person's information.",
        "x-question": "Was this person's agreement sought, and who could give it?",
        "type": "object",
        "additionalProperties": False,
        "required": ["sought"],
        "properties": {
            "sought": yes_no(r2, "Agreement sought", "Did you seek agreement to share this person's information?"),
            "not_sought_reason": {
                **copy.deepcopy(openness_reasons),
                "x-golden-rule": r2,
                "description": "Required when agreement was not sought for this person.",
            },
            "who": {
                "x-golden-rule": r2,
                "title": "Who could agree",
                "x-question": "Who could agree for this person?",
                "type": "string",
                "enum": [
                    "person",
                    "gillick_competent_child",
                    "parental_responsibility",
                    "attorney_or_deputy",
                    "best_interests",
                ],
                "x-labels": {
                    "person": "The person themselves",
                    "gillick_competent_child": "The child, who is competent to decide (Gillick)",
                    "parental_responsibility": "A person with parental responsibility",
                    "attorney_or_deputy": "An attorney or deputy (Mental Capacity Act 2005)",
                    "best_interests": "Nobody: a best-interests decision under the Mental Capacity Act 2005",
                },
            },
            "response": {
                "x-golden-rule": r4,
                "title": "What they said",
                "x-question": "What did they say?",
                "type": "string",
                "enum": ["given", "refused", "unable"],
                "x-labels": {"given": "Agreed", "refused": "Refused", "unable": "Could not decide"},
            },
            "capacity_assessed_by": {
                "x-golden-rule": r2,
                "title": "Capacity assessed by",
                "x-question": "Who assessed the person's capacity (name and job title)?",
                "$ref": "#/$defs/line",
            },
            "capacity_assessed_on": {
                "x-golden-rule": r2,
                "title": "Capacity assessed on",
                "x-question": "When was capacity assessed (date)?",
                "$ref": "#/$defs/date",
            },
            "childs_views": {
                "x-golden-rule": r4,
                "title": "The child's own views",
                "x-question": "What are the child's own views, where known? (optional)",
                "$ref": "#/$defs/text",
            },
        },
        "allOf": [
            {
                "if": cond(["sought"], {"const": False}),
                "then": {
                    "required": ["not_sought_reason"],
                    "x-errors": err(
                        "required",
                        "subject_not_sought_needs_reason",
                        "must be filled in when this person's agreement was not sought",
                        r2,
                    ),
                },
            },
            {
                "if": cond(["sought"], {"const": True}),
                "then": {
                    "required": ["who"],
                    "x-errors": err(
                        "required",
                        "subject_sought_needs_who",
                        "must be filled in when this person's agreement was sought",
                        r2,
                    ),
                },
            },
            {
                "if": all_of(cond(["sought"], {"const": True}), {"not": cond(["who"], {"const": "best_interests"})}),
                "then": {
                    "required": ["response"],
                    "x-errors": err(
                        "required",
                        "subject_sought_needs_response",
                        "must be filled in when this person's agreement was sought",
                        r4,
                    ),
                },
            },
            {
                "if": {"not": cond(["sought"], {"const": False})},
                "then": {
                    "properties": {
                        "not_sought_reason": {
                            "not": {},
                            "x-errors": err(
                                "not",
                                "not_applicable",
                                "is asked only when this person's agreement was not sought; leave it out",
                                r2,
                            ),
                        }
                    }
                },
            },
            {
                "if": {"not": cond(["sought"], {"const": True})},
                "then": {
                    "properties": {
                        "response": {
                            "not": {},
                            "x-errors": err(
                                "not",
                                "not_applicable",
                                "is asked only when this person's agreement was sought; leave it out",
                                r4,
                            ),
                        }
                    }
                },
            },
            {
                "if": {"not": cond(["who"], {"const": "best_interests"})},
                "then": {
                    "properties": {
                        k: {
                            "not": {},
                            "x-errors": err(
                                "not", "not_applicable", "is asked only for a best-interests decision; leave it out", r2
                            ),
                        }
                        for k in ("capacity_assessed_by", "capacity_assessed_on")
                    }
                },
            },
            {
                "if": cond(["who"], {"const": "best_interests"}),
                "then": {
                    "required": ["capacity_assessed_by", "capacity_assessed_on"],
                    "x-errors": err(
                        "required",
                        "best_interests_needs_assessment",
                        "must be filled in for a best-interests decision: the Mental Capacity Act 2005 asks who assessed capacity and when",
                        r2,
                    ),
                },
            },
        ],
    }
    item["properties"]["adult_at_risk_tests"] = {
        "x-golden-rule": r5,
        "title": "Adult at risk (DPA 2018 Schedule 1 paragraph 18(3))",
        "description": "Only for an adult at risk: the three tests of paragraph 18(3), all of which must be met for paragraph 18 to protect an adult.",
        "x-question": "Does this adult meet all three tests of an adult at risk?",
        "type": "object",
        "additionalProperties": False,
        "required": ["care_and_support_needs", "experiencing_or_at_risk_of_harm", "unable_to_protect_self"],
        "properties": {
            "care_and_support_needs": yes_no(r5, "Care and support needs", "Do they have needs for care and support?"),
            "experiencing_or_at_risk_of_harm": yes_no(
                r5,
                "Experiencing or at risk of harm",
                "Are they experiencing, or at risk of, neglect or physical, mental or emotional harm?",
            ),
            "unable_to_protect_self": yes_no(
                r5,
                "Unable to protect themselves",
                "Because of those needs, are they unable to protect themselves against it?",
            ),
        },
    }
    item["properties"]["economic_risk"] = yes_no(
        r5,
        "At economic risk (paragraph 19)",
        "Is this adult less able to protect their economic well-being because of physical or mental injury, illness or disability?",
        "Only for an adult (18 or over), when relying on DPA 2018 Schedule 1 paragraph 19.",
    )
    item["allOf"] = [
        {
            "if": {"not": cond(["role"], {"const": "child"})},
            "then": {
                "properties": {
                    "consent": {
                        "properties": {
                            "who": {
                                "not": {"enum": ["gillick_competent_child", "parental_responsibility"]},
                                "x-errors": err(
                                    "not",
                                    "consent_who_child_only",
                                    "can be a competent child or a person with parental responsibility only for a child",
                                    r2,
                                ),
                            },
                            "childs_views": {
                                "not": {},
                                "x-errors": err("not", "childs_views_child_only", "is asked only for a child", r4),
                            },
                        }
                    },
                },
            },
        },
        {
            "if": cond(["role"], {"const": "child"}),
            "then": {
                "properties": {
                    "consent": {
                        "properties": {
                            "who": {
                                "not": {"enum": ["attorney_or_deputy", "best_interests"]},
                                "x-errors": err(
                                    "not",
                                    "consent_who_adult_only",
                                    "can be an attorney, deputy or best-interests decision only for someone aged 16 or over under the Mental Capacity Act 2005; for a child, record the child (if competent) or a person with parental responsibility",
                                    r2,
                                ),
                            }
                        }
                    },
                    "economic_risk": {
                        "not": {},
                        "x-errors": err(
                            "not",
                            "economic_risk_adult_only",
                            "is asked only for an adult: paragraph 19 protects people aged 18 or over",
                            r5,
                        ),
                    },
                }
            },
        },
        {
            "if": {"not": cond(["role"], {"const": "adult_at_risk"})},
            "then": {
                "properties": {
                    "adult_at_risk_tests": {
                        "not": {},
                        "x-errors": err(
                            "not", "adult_tests_adult_at_risk_only", "is asked only for an adult at risk", r5
                        ),
                    }
                }
            },
        },
    ]

    # -- the request answered (ICO Annex B) -------------------------------------------------------------------
    doc["properties"]["request"] = {
        "x-golden-rule": rec,
        "title": "Request answered",
        "description": "Only when the decision answers a request from another organisation: who asked, and when (ICO Data Sharing Code, Annex B).",
        "x-question": "Are you answering a request? Who made it, and when did you receive it?",
        "type": "object",
        "additionalProperties": False,
        "required": ["organisation", "name", "position", "received_on"],
        "properties": {
            "organisation": {
                "x-golden-rule": rec,
                "title": "Requester's organisation",
                "x-question": "Which organisation asked?",
                "$ref": "#/$defs/line",
            },
            "name": {
                "x-golden-rule": rec,
                "title": "Requester's name",
                "x-question": "Who asked (their name)?",
                "$ref": "#/$defs/line",
            },
            "position": {
                "x-golden-rule": rec,
                "title": "Requester's position",
                "x-question": "What is their position?",
                "$ref": "#/$defs/line",
            },
            "received_on": {
                "x-golden-rule": rec,
                "title": "Received on",
                "x-question": "When did you receive the request (date)?",
                "$ref": "#/$defs/date",
            },
        },
    }
    # keep "rules" last in the form
    props = doc["properties"]
    doc["properties"] = {k: v for k, v in props.items() if k != "rules"} | {"rules": props["rules"]}

    # -- rule 1: the lawful-basis section --------------------------------------------------------------------
    lbs = rules["1_lawful_basis"]
    p = lbs["properties"]
    sch = p["dpa_schedule_1"]
    sch["enum"] = [
        "p18_safeguarding",
        "p6_statutory_purposes",
        "p10_preventing_crime",
        "p19_economic_wellbeing",
        "p1_employment_social_protection",
        "p2_health_social_care",
        "p36_criminal_extension",
    ]
    sch["x-labels"].update(
        {
            "p19_economic_wellbeing": "Safeguarding of economic well-being of certain individuals — DPA 2018 Sch 1 para 19",
            "p1_employment_social_protection": "Employment, social security and social protection — DPA 2018 Sch 1 para 1 (with Art 9(2)(b))",
            "p2_health_social_care": "Health or social care purposes — DPA 2018 Sch 1 para 2 (with Art 9(2)(h))",
            "p36_criminal_extension": "Criminal offence data: a Part 2 condition without its substantial public interest test — DPA 2018 Sch 1 para 36",
        }
    )
    sch["description"] = (
        "Part 1 paragraphs 1 and 2 go with Article 9(2)(b) and (h); Article 9(2)(g) substantial public interest needs a Part 2 "
        "condition (6, 10, 18 or 19); paragraph 36 serves criminal offence information only. Each condition has its own tests, "
        "checked below. Paragraph 18 applies only where consent is not the basis for one of the reasons in 18(2) — it cannot be "
        "given, cannot reasonably be obtained, or seeking it would prejudice the protection — and only for someone under 18 or "
        "an adult at risk (18(3))."
    )
    new_lb = {
        "legal_duty": {
            "x-golden-rule": lb,
            "title": "The legal duty",
            "description": "Legal obligation (Article 6(1)(c)) needs a duty to share. Children Act 2004 ss.10 and 11 and Crime and Disorder Act 1998 s.115 are powers, not duties: they support public task.",
            "x-question": "Which duty obliges you to share?",
            "type": "string",
            "enum": [
                "care_act_2014_s45",
                "children_act_2004_s16h",
                "children_act_1989_s47_assist",
                "court_order",
                "other_statutory_duty",
            ],
            "x-labels": {
                "care_act_2014_s45": "Care Act 2014 s45 — a Safeguarding Adults Board's request",
                "children_act_2004_s16h": "Children Act 2004 s16H — the safeguarding partners' request",
                "children_act_1989_s47_assist": "Children Act 1989 s47(9)-(11) — duty to assist the local authority's enquiries",
                "court_order": "A court order",
                "other_statutory_duty": "Another statutory duty (name it)",
            },
        },
        "legal_duty_detail": {
            "x-golden-rule": lb,
            "title": "The duty, named",
            "x-question": "Name the order or enactment (court, date and reference, or the Act and section).",
            "$ref": "#/$defs/line",
        },
        "professional": {
            "x-golden-rule": lb,
            "title": "Professional responsible (DPA 2018 s.11)",
            "description": "Article 9(2)(h) health or social care applies only where a health or social work professional, or someone else under a duty of confidentiality, is responsible for the processing.",
            "x-question": "Who is responsible for this health or social care processing?",
            "type": "string",
            "enum": ["health_professional", "social_work_professional", "duty_of_confidentiality"],
            "x-labels": {
                "health_professional": "A health professional",
                "social_work_professional": "A social work professional",
                "duty_of_confidentiality": "Someone else who owes a duty of confidentiality",
            },
        },
        "p10_consent_would_prejudice": yes_no(
            lb,
            "Seeking consent would prejudice preventing or detecting the crime (paragraph 10)",
            "Would seeking the person's consent prejudice preventing or detecting the unlawful act?",
            "Paragraph 10 applies only where the sharing must happen without consent so as not to prejudice preventing or detecting the unlawful act.",
        ),
        "consent_reason_18_2": {
            "x-golden-rule": lb,
            "title": "Why paragraph 18 (or 19) still applies after the refusal",
            "description": "After a refusal, paragraphs 18 and 19 still need one of the 18(2) reasons for sharing without consent.",
            "x-question": "The person refused. Which reason in paragraph 18(2) applies?",
            "type": "string",
            "enum": list(R18_2),
            "x-labels": {
                "cannot_give": "In the circumstances the person cannot give consent",
                "not_reasonably_obtainable": "Consent cannot reasonably be expected to be obtained",
                "would_prejudice_protection": "Seeking consent would prejudice the protection",
            },
        },
        "sexual_abuse_reveals_sex_life": yes_no(
            lb,
            "Sexual abuse information reveals sex life",
            "Does the information about sexual abuse reveal the person's sex life or sexual orientation? If so it is special category information.",
        ),
        "policy_document": {
            "x-golden-rule": lb,
            "title": "Appropriate policy document",
            "description": "DPA 2018 Schedule 1 Part 4: the organisation's appropriate policy document relied on for paragraphs 1, 6, 10, 18, 19 and 36. Usually taken from the gateway's configuration; give it here only to override.",
            "x-question": "Which appropriate policy document (ID and version) does your organisation rely on?",
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "version"],
            "properties": {
                "id": {"x-golden-rule": lb, "title": "Document ID", "x-question": "Its ID", "$ref": "#/$defs/line"},
                "version": {
                    "x-golden-rule": lb,
                    "title": "Version",
                    "x-question": "Its version",
                    "$ref": "#/$defs/line",
                },
            },
        },
    }
    explanation = p.pop("explanation")
    p.update(new_lb)
    p["explanation"] = explanation
    p["article_6"]["description"] = (
        "Public task is the usual basis for a public authority's safeguarding work; legal obligation needs a named duty; vital "
        "interests only at immediate risk or significant harm; consent only where the share would not happen anyway, and each "
        "person's own consent; legitimate interests and recognised legitimate interest (Data (Use and Access) Act 2025) are "
        "not for a public authority's own tasks."
    )
    p["article_9"]["description"] = (
        "Required when any special category information is shared (health, sex life or orientation, ethnicity, religion or "
        "belief, genetic, biometric, political opinions, trade union membership). (b) needs Schedule 1 paragraph 1, (h) "
        "paragraph 2 and a professional under a duty of confidentiality, (g) a Part 2 condition."
    )

    # the existing paragraph 18 conditions: report them under the lawful-basis rule, and apply them to paragraph 19 too
    for block in rules_allof(doc):
        text = json.dumps(block)
        if "p18_safeguarding" not in text:
            continue
        for e in iter_xerrors(block):
            e["rule_of"] = "rules.1_lawful_basis"
            e["message"] = e["message"].replace(
                "paragraph 18 (safeguarding)", "paragraph 18 (safeguarding) or 19 (economic well-being)"
            )
        for leaf in iter_consts(block, "p18_safeguarding"):
            leaf.pop("const")
            leaf["enum"] = ["p18_safeguarding", "p19_economic_wellbeing"]

    new_root = []
    S1 = LB + ["dpa_schedule_1"]
    A6 = LB + ["article_6"]
    A9 = LB + ["article_9"]
    RISK = SAFE + ["risk_level"]
    HIGH = ["immediate", "significant_harm"]

    def when(*conds, then):
        new_root.append({"if": all_of(*conds), "then": then})

    # special categories: sexual abuse → is it sex-life data?
    when(
        cond(["data_categories"], {"type": "array", "contains": {"const": "sexual_abuse"}}),
        then=req(
            LB,
            ["sexual_abuse_reveals_sex_life"],
            "sexual_abuse_ask_sex_life",
            "must be answered because information about sexual abuse may be data concerning the person's sex life (special category)",
            lb,
        ),
    )
    when(
        cond(LB + ["sexual_abuse_reveals_sex_life"], {"const": True}),
        then=req(
            LB,
            ["article_9"],
            "special_category_needs_article_9",
            "must be filled in because the information about sexual abuse reveals the person's sex life, which is special category information",
            lb,
        ),
    )
    # Article 6
    when(
        cond(A6, {"const": "legal_obligation"}),
        then=req(
            LB,
            ["legal_duty"],
            "legal_obligation_needs_duty",
            "must be filled in: legal obligation needs the duty that obliges you to share (e.g. Care Act 2014 s45, Children Act 2004 s16H, a court order). Children Act 2004 ss.10 and 11 and Crime and Disorder Act 1998 s.115 are powers, not duties: rely on public task with them",
            lb,
        ),
    )
    when(
        cond(LB + ["legal_duty"], {"enum": ["court_order", "other_statutory_duty"]}),
        then=req(
            LB,
            ["legal_duty_detail"],
            "legal_duty_needs_detail",
            "must be filled in: name the court order or the enactment that imposes the duty",
            lb,
        ),
    )
    when(
        cond(A6, {"const": "vital_interests"}),
        then=put(
            RISK,
            {
                "enum": HIGH,
                "x-errors": err(
                    "enum",
                    "vital_interests_needs_serious_risk",
                    "must be immediate risk or significant harm when relying on vital interests (Article 6(1)(d)): it is for life-or-death or serious harm, not routine concerns — use public task",
                    lb,
                ),
            },
        ),
    )
    when(
        cond(A6, {"const": "consent"}),
        then={
            "properties": {
                "rules": {
                    "properties": {
                        "5_safety_wellbeing": {
                            "properties": {
                                "risk_level": {
                                    "not": {"enum": HIGH},
                                    "x-errors": err(
                                        "not",
                                        "consent_basis_share_anyway",
                                        "rules out consent as the lawful basis: at immediate risk or significant harm you would share anyway, so consent is not freely given — use public task (or legal obligation) and still tell the person",
                                        lb,
                                    ),
                                }
                            }
                        }
                    }
                },
                "purpose": {
                    "properties": {
                        "code": {
                            "not": {"const": "s47_enquiry"},
                            "x-errors": err(
                                "not",
                                "consent_basis_share_anyway",
                                "rules out consent as the lawful basis: a s47 enquiry goes ahead whatever the person says — use public task",
                                lb,
                            ),
                        }
                    }
                },
            }
        },
    )
    # Article 9 ↔ Schedule 1 Part 1
    when(
        cond(A9, {"const": "social_protection"}),
        then={
            **req(
                LB,
                ["dpa_schedule_1"],
                "social_protection_needs_paragraph_1",
                "must be filled in: Article 9(2)(b) needs DPA 2018 Schedule 1 paragraph 1 (DPA 2018 s.10(2))",
                lb,
            ),
            **{},
        },
    )
    when(
        cond(A9, {"const": "social_protection"}),
        then=put(
            S1,
            {
                "const": "p1_employment_social_protection",
                "x-errors": err(
                    "const",
                    "social_protection_needs_paragraph_1",
                    "must be paragraph 1 (employment, social security and social protection): Article 9(2)(b) needs it",
                    lb,
                ),
            },
        ),
    )
    when(
        cond(S1, {"const": "p1_employment_social_protection"}),
        then={
            **req(
                LB,
                ["article_9"],
                "paragraph_1_needs_article_9b",
                "must be filled in: paragraph 1 goes with Article 9(2)(b) social protection",
                lb,
            ),
        },
    )
    when(
        cond(S1, {"const": "p1_employment_social_protection"}),
        then=put(
            A9,
            {
                "const": "social_protection",
                "x-errors": err(
                    "const",
                    "paragraph_1_needs_article_9b",
                    "must be Article 9(2)(b) (employment and social protection) when relying on paragraph 1",
                    lb,
                ),
            },
        ),
    )
    when(
        cond(A9, {"const": "health_social_care"}),
        then=req(
            LB,
            ["dpa_schedule_1", "professional"],
            "health_social_care_needs_paragraph_2",
            "must be filled in: Article 9(2)(h) needs DPA 2018 Schedule 1 paragraph 2 and a health or social work professional, or someone under a duty of confidentiality, responsible (DPA 2018 s.11)",
            lb,
        ),
    )
    when(
        cond(A9, {"const": "health_social_care"}),
        then={
            "properties": {
                "rules": put(
                    ["1_lawful_basis", "dpa_schedule_1"],
                    {
                        "const": "p2_health_social_care",
                        "x-errors": err(
                            "const",
                            "health_social_care_needs_paragraph_2",
                            "must be paragraph 2 (health or social care): Article 9(2)(h) needs it",
                            lb,
                        ),
                    },
                ),
                "purpose": {
                    "properties": {
                        "code": {
                            "not": {"const": "crime_prevention"},
                            "x-errors": err(
                                "not",
                                "health_social_care_not_for_crime",
                                "rules out Article 9(2)(h): health or social care purposes do not cover preventing or detecting crime or a prosecution — use substantial public interest with paragraph 10 or 18",
                                lb,
                            ),
                        }
                    }
                },
            }
        },
    )
    when(
        cond(S1, {"const": "p2_health_social_care"}),
        then=put(
            A9,
            {
                "const": "health_social_care",
                "x-errors": err(
                    "const",
                    "paragraph_2_needs_article_9h",
                    "must be Article 9(2)(h) (health or social care) when relying on paragraph 2",
                    lb,
                ),
            },
        ),
    )
    when(
        cond(S1, {"const": "p2_health_social_care"}),
        then=req(
            LB,
            ["article_9"],
            "paragraph_2_needs_article_9h",
            "must be filled in: paragraph 2 goes with Article 9(2)(h) health or social care",
            lb,
        ),
    )
    when(
        cond(A9, {"const": "substantial_public_interest"}),
        then=put(
            S1,
            {
                "enum": PUBLIC_CONDITIONS,
                "x-errors": err(
                    "enum",
                    "substantial_public_interest_needs_part_2",
                    "must be a Part 2 condition (paragraph 6, 10, 18 or 19) with Article 9(2)(g) substantial public interest",
                    lb,
                ),
            },
        ),
    )
    when(
        cond(A9, {"const": "vital_interests"}),
        then=put(
            RISK,
            {
                "enum": HIGH,
                "x-errors": err(
                    "enum",
                    "vital_interests_needs_serious_risk",
                    "must be immediate risk or significant harm when relying on vital interests (Article 9(2)(c))",
                    lb,
                ),
            },
        ),
    )
    # Schedule 1 Part 2 conditions' own tests
    when(
        cond(S1, {"const": "p6_statutory_purposes"}),
        then={
            **req(
                LB,
                ["statutory_gateways"],
                "p6_needs_enactment",
                "must name the enactment: paragraph 6 applies only to a function conferred by an enactment",
                lb,
            ),
        },
    )
    when(
        cond(S1, {"const": "p6_statutory_purposes"}),
        then=put(
            LB + ["statutory_gateways"],
            {
                "minItems": 1,
                "x-errors": err(
                    "minItems",
                    "p6_needs_enactment",
                    "must name the enactment: paragraph 6 applies only to a function conferred by an enactment",
                    lb,
                ),
            },
        ),
    )
    when(
        cond(S1, {"const": "p10_preventing_crime"}),
        then={
            "properties": {
                "rules": {
                    "properties": {
                        "1_lawful_basis": {
                            "required": ["p10_consent_would_prejudice"],
                            "x-errors": err(
                                "required",
                                "p10_needs_consent_prejudice",
                                "must be answered: paragraph 10 applies only where seeking consent would prejudice preventing or detecting the unlawful act",
                                lb,
                            ),
                            "properties": {
                                "p10_consent_would_prejudice": {
                                    "const": True,
                                    "x-errors": err(
                                        "const",
                                        "p10_needs_consent_prejudice",
                                        "must be yes for paragraph 10: if asking the person would not prejudice preventing or detecting the crime, ask them, or rely on another condition",
                                        lb,
                                    ),
                                }
                            },
                        },
                        "4_transparency": {
                            "properties": {
                                "consent": {
                                    "not": {"const": "given"},
                                    "x-errors": err(
                                        "not",
                                        "p10_consent_given",
                                        "rules out paragraph 10: it applies only to sharing without consent, and the person consented — rely on their explicit consent instead",
                                        lb,
                                    ),
                                }
                            }
                        },
                    }
                }
            }
        },
    )
    when(
        cond(S1, {"enum": ["p18_safeguarding", "p19_economic_wellbeing"]}),
        then={
            "properties": {
                "rules": {
                    "properties": {
                        "5_safety_wellbeing": {
                            "properties": {
                                "risk_level": {
                                    "not": {"const": "none_identified"},
                                    "x-errors": err(
                                        "not",
                                        "p18_needs_risk",
                                        "rules out paragraphs 18 and 19: they apply only where sharing is necessary to protect someone, and no risk was identified",
                                        lb,
                                    ),
                                },
                                "at_risk": {
                                    "minItems": 1,
                                    "x-errors": err(
                                        "minItems",
                                        "p18_needs_someone_at_risk",
                                        "must name the person the share protects: paragraphs 18 and 19 apply only to protect someone at risk",
                                        lb,
                                    ),
                                },
                            }
                        }
                    }
                }
            }
        },
    )
    when(
        cond(S1, {"enum": ["p18_safeguarding", "p19_economic_wellbeing"]}),
        cond(TRANS + ["consent"], {"const": "refused"}),
        then=req(
            LB,
            ["consent_reason_18_2"],
            "p18_refused_needs_18_2_reason",
            "must be filled in: after a refusal, paragraphs 18 and 19 still apply only for one of the paragraph 18(2) reasons",
            lb,
        ),
    )
    when(
        cond(S1, {"const": "p18_safeguarding"}),
        then={
            "properties": {
                "subjects": {
                    "items": {
                        "if": cond(["role"], {"const": "adult_at_risk"}),
                        "then": {
                            "required": ["adult_at_risk_tests"],
                            "x-errors": err(
                                "required",
                                "p18_adult_needs_18_3",
                                "must be answered: paragraph 18 protects an adult only if they meet all three tests of paragraph 18(3)",
                                lb,
                            ),
                            "properties": {
                                "adult_at_risk_tests": {
                                    "properties": {
                                        k: {
                                            "const": True,
                                            "x-errors": err(
                                                "const",
                                                "p18_adult_not_at_risk_18_3",
                                                "must be yes for paragraph 18 to protect this adult (paragraph 18(3)); otherwise rely on another condition",
                                                lb,
                                            ),
                                        }
                                        for k in (
                                            "care_and_support_needs",
                                            "experiencing_or_at_risk_of_harm",
                                            "unable_to_protect_self",
                                        )
                                    }
                                }
                            },
                        },
                    }
                }
            }
        },
    )
    when(
        cond(S1, {"const": "p19_economic_wellbeing"}),
        then={
            "properties": {
                "subjects": {
                    "contains": {
                        "type": "object",
                        "required": ["role", "economic_risk"],
                        "properties": {"role": {"not": {"const": "child"}}, "economic_risk": {"const": True}},
                    },
                    "x-errors": err(
                        "contains",
                        "p19_needs_individual_at_economic_risk",
                        "must include an adult (18 or over) who is less able to protect their economic well-being because of injury, illness or disability: paragraph 19 protects only such a person",
                        lb,
                    ),
                }
            }
        },
    )
    when(
        cond(S1, {"const": "p36_criminal_extension"}),
        then={
            "properties": {
                "data_categories": {
                    "contains": {"enum": ["criminal_allegation", "criminal_conviction"]},
                    "x-errors": err(
                        "contains",
                        "p36_only_criminal_data",
                        "must include criminal offence information: paragraph 36 is a condition for criminal offence data only",
                        lb,
                    ),
                }
            }
        },
    )
    # rules 2 and 4 agree
    when(
        cond(OPEN + ["agreement_sought"], {"const": False}),
        then=put(
            TRANS + ["consent"],
            {
                "enum": ["not_sought", "unable"],
                "x-errors": err(
                    "enum",
                    "consent_contradicts_openness",
                    "must be 'Consent not sought' or 'Unable to consent' because you did not seek the person's agreement (rule on openness)",
                    r4,
                ),
            },
        ),
    )
    when(
        cond(OPEN + ["agreement_sought"], {"const": True}),
        then=put(
            TRANS + ["consent"],
            {
                "not": {"const": "not_sought"},
                "x-errors": err(
                    "not",
                    "consent_contradicts_openness",
                    "must say what the person said: you sought their agreement",
                    r4,
                ),
            },
        ),
    )
    # rule 6: quality of the information and urgency
    when(
        cond(NEC + ["accurate_and_current"], {"const": False}),
        then=req(
            NEC,
            ["information_quality"],
            "caveat_needs_quality",
            "must be filled in when you cannot confirm the information is accurate and current: say where it came from, whether it is verified, whether it is fact or opinion, and how old it is",
            r6,
        ),
    )
    when(
        cond(RISK, {"const": "immediate"}),
        then=put(
            NEC + ["urgency"],
            {
                "not": {"const": "routine"},
                "x-errors": err(
                    "not", "routine_at_immediate_risk", "must not be routine when the risk is immediate", r6
                ),
            },
        ),
    )

    # Questions that apply only in some situations are refused outside them, so the form can show each one only
    # where it applies (a renderer hides a field whose answer the schema would refuse as not applicable).
    def only_when(path, condition, what):
        new_root.append(
            {
                "if": {"not": condition},
                "then": put(
                    path,
                    {
                        "not": {},
                        "x-errors": err(
                            "not",
                            "not_applicable",
                            "is asked only " + what + "; leave it out",
                            SECTION_RULE[path[1]] if len(path) > 1 else rec,
                        ),
                    },
                ),
            }
        )

    SECTION_RULE = {k: v["x-golden-rule"] for k, v in rules.items()}
    only_when(LB + ["legal_duty"], cond(A6, {"const": "legal_obligation"}), "when the lawful basis is legal obligation")
    only_when(
        LB + ["legal_duty_detail"],
        cond(LB + ["legal_duty"], {"enum": ["court_order", "other_statutory_duty"]}),
        "for a court order or another statutory duty",
    )
    only_when(
        LB + ["professional"], cond(A9, {"const": "health_social_care"}), "with Article 9(2)(h) health or social care"
    )
    only_when(LB + ["p10_consent_would_prejudice"], cond(S1, {"const": "p10_preventing_crime"}), "with paragraph 10")
    only_when(
        LB + ["consent_reason_18_2"],
        cond(S1, {"enum": ["p18_safeguarding", "p19_economic_wellbeing"]}),
        "with paragraph 18 or 19",
    )
    only_when(
        LB + ["sexual_abuse_reveals_sex_life"],
        cond(["data_categories"], {"type": "array", "contains": {"const": "sexual_abuse"}}),
        "when information about sexual abuse is shared",
    )
    only_when(
        LB + ["policy_document"],
        cond(
            S1,
            {
                "enum": [
                    "p1_employment_social_protection",
                    "p6_statutory_purposes",
                    "p10_preventing_crime",
                    "p18_safeguarding",
                    "p19_economic_wellbeing",
                    "p36_criminal_extension",
                ]
            },
        ),
        "with a Schedule 1 condition that needs an appropriate policy document",
    )
    only_when(
        NEC + ["information_quality"],
        cond(NEC + ["accurate_and_current"], {"const": False}),
        "when you cannot confirm the information is accurate and up to date",
    )
    doc["allOf"].extend(new_root)

    # "per person": the answer differs between the people, and each person's own record says what they said
    tc = rules["4_transparency"]["properties"]["consent"]
    tc["enum"].append("per_person")
    tc["x-labels"]["per_person"] = "Differs from person to person (recorded for each person)"
    for block in rules_allof(doc):
        consent = (
            block.get("then", {})
            .get("properties", {})
            .get("4_transparency", {})
            .get("properties", {})
            .get("consent", {})
        )
        if consent.get("const") == "given":
            consent.pop("const")
            consent["enum"] = ["given", "per_person"]
            for e in consent["x-errors"].values():
                e["message"] = e["message"].replace(
                    "must be 'Consent given'",
                    "must be 'Consent given' (or, with several people, each person's own agreement)",
                )
            consent["x-errors"] = {"enum": next(iter(consent["x-errors"].values()))}

    doc["x-lawful-basis-checks"] = {
        "per_person": "per_person",
        "description": "Codes the gateway's named cross-field rules (gateway/justification.py) compare across fields, where JSON Schema cannot: each person's consent against the lawful basis, paragraph 18's protected people, the sharer's organisation type, and the appropriate policy document.",
        "consent_basis": "consent",
        "article_9_consent": "explicit_consent",
        "without_consent": {"p18_safeguarding": "18", "p19_economic_wellbeing": "19", "p10_preventing_crime": "10"},
        "reasons_18_2": list(R18_2),
        "protects_only": {"condition": "p18_safeguarding", "roles": ["child", "adult_at_risk"]},
        "not_for_public_authorities": ["legitimate_interests", "recognised_legitimate_interest"],
        "not_for_police": ["health_social_care"],
        "needs_policy_document": [
            "p1_employment_social_protection",
            "p6_statutory_purposes",
            "p10_preventing_crime",
            "p18_safeguarding",
            "p19_economic_wellbeing",
            "p36_criminal_extension",
        ],
    }

    # -- rule 6 fields ---------------------------------------------------------------------------------------
    nec = rules["6_necessary_proportionate"]
    np = nec["properties"]
    acc = np["accurate_and_current"]
    acc.pop("const", None)
    acc.pop("x-errors", None)
    acc["x-question"] = (
        "Can you confirm the information is accurate and up to date? If not, say how far it can be relied on."
    )
    acc["description"] = (
        "Answer no to share an honestly caveated disclosure (for example unverified, or an opinion); you then record its source, whether it is verified, fact or opinion, and how old it is."
    )
    new_np = {}
    for k, v in np.items():
        new_np[k] = v
        if k == "proportionality":
            new_np["adequate"] = {
                **yes_no(r6, "Adequate", "Is what you share enough for the recipient to act on (adequate)?"),
                "const": True,
                "x-errors": {
                    "const": {
                        "code": "must_confirm",
                        "message": "must be yes: share enough for the recipient to act; if something they need is missing, add it or say why under Necessity",
                    }
                },
            }
            new_np["left_out"] = {
                "x-golden-rule": r6,
                "title": "What was left out, and why",
                "x-question": "What did you leave out, and why? (optional; data minimisation)",
                "$ref": "#/$defs/text",
            }
        if k == "accurate_and_current":
            new_np["information_quality"] = {
                "x-golden-rule": r6,
                "title": "How far the information can be relied on",
                "x-question": "Where did the information come from, is it verified, is it fact or opinion, and how old is it?",
                "type": "object",
                "additionalProperties": False,
                "required": ["source", "verified", "nature", "as_of"],
                "properties": {
                    "source": {
                        "x-golden-rule": r6,
                        "title": "Source",
                        "x-question": "Where did it come from?",
                        "type": "string",
                        "enum": [
                            "direct_observation",
                            "disclosure_by_person",
                            "third_party_report",
                            "records",
                            "professional_assessment",
                            "anonymous",
                            "other",
                        ],
                        "x-labels": {
                            "direct_observation": "Seen or heard by me or a colleague",
                            "disclosure_by_person": "Told by the person it is about",
                            "third_party_report": "Reported by someone else",
                            "records": "From records",
                            "professional_assessment": "A professional's assessment",
                            "anonymous": "Anonymous report",
                            "other": "Other",
                        },
                    },
                    "verified": yes_no(r6, "Verified", "Has it been checked against another source?"),
                    "nature": {
                        "x-golden-rule": r6,
                        "title": "Fact or opinion",
                        "x-question": "Is it fact, opinion, or both?",
                        "type": "string",
                        "enum": ["fact", "opinion", "mixed"],
                        "x-labels": {"fact": "Fact", "opinion": "Opinion", "mixed": "Both, marked as such"},
                    },
                    "as_of": {
                        "x-golden-rule": r6,
                        "title": "As of",
                        "x-question": "When was it last known to be true (date)?",
                        "$ref": "#/$defs/date",
                    },
                },
            }
    nec["properties"] = new_np
    nec["title"] = nec["title"].replace("Necessary, proportionate", "Necessary, proportionate, adequate")
    return doc


def rules_allof(doc):
    return doc["properties"]["rules"].get("allOf", [])


def iter_xerrors(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "x-errors" and isinstance(v, dict):
                yield from v.values()
            else:
                yield from iter_xerrors(v)
    elif isinstance(node, list):
        for v in node:
            yield from iter_xerrors(v)


def iter_consts(node, value):
    if isinstance(node, dict):
        if node.get("const") == value:
            yield node
        for v in node.values():
            yield from iter_consts(v, value)
    elif isinstance(node, list):
        for v in node:
            yield from iter_consts(v, value)


for path in sys.argv[1:]:
    doc = json.load(open(path))
    patch(doc)
    with open(path, "w") as f:
        f.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
