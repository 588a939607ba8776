"""Canonical anatomy names and the synonyms they are known by.

Canonical names follow TotalSegmentator's class names (task ``total`` and
``head_glands_cavities``; TotalSegmentator ``map_to_binary.py``) where one exists, plus localize's
own regions (``body``, ``bone``, ``bowel``, ``prostate_bed``, ``iliac_wing_*``,
``acetabulum_*``, ``femoral_head_*``, ``pubic_symphysis``). Synonyms cover
TotalSegmentator v1 names and TG-263 planning-structure names (AAPM TG-263,
2018), matched case-insensitively ignoring punctuation.
"""

from __future__ import annotations

import re

# the prefixes of the canonical names of bones (a vertebra, a rib, a side's hip bone...)
NAMED_BONES = ("vertebrae_", "sacrum", "hip_", "femur_", "rib_", "sternum", "scapula_", "clavicula_", "humerus_",
               "skull")

_SIDES = {"left": ("L", "Lt", "left"), "right": ("R", "Rt", "right")}

# canonical -> TG-263 (and common TPS) names; "{s}" stands for the side suffix L / R
_PAIRED_TG263 = {
    "kidney": ("Kidney_{s}",),
    "lung": ("Lung_{s}",),
    "parotid_gland": ("Parotid_{s}", "Glnd_Parotid_{s}"),
    "submandibular_gland": ("Glnd_Submand_{s}", "Submandibular_{s}", "Submand_{s}"),
    "femoral_head": ("Femur_Head_{s}", "FemoralHead_{s}", "Femur_Head_Neck_{s}"),
    "femur": ("Femur_{s}",),
    "hip": ("Bone_Hip_{s}", "Bone_Pelvic_{s}", "PelvicBone_{s}", "Bone_Ilium_{s}"),
    "iliac_artery": ("A_Iliac_{s}", "A_Iliac_Common_{s}"),
    "iliac_vena": ("V_Iliac_{s}", "V_Iliac_Common_{s}"),
    "adrenal_gland": ("Glnd_Adrenal_{s}",),
    "ureter": ("Ureter_{s}",),
}

_SINGLE_TG263 = {
    "urinary_bladder": ("Bladder", "UrinaryBladder"),
    "liver": ("Liver",),
    "spleen": ("Spleen",),
    "prostate": ("Prostate",),
    "prostate_bed": ("ProstateBed", "Prostate_Bed", "ProstateFossa", "Prostate_Fossa", "CTV_ProstateBed"),
    "rectum": ("Rectum",),
    "bowel": ("Bowel", "Bowel_Bag", "BowelBag"),
    "small_bowel": ("Bowel_Small", "SmallBowel"),
    "colon": ("Colon", "Bowel_Large", "LargeBowel", "Colon_Sigmoid", "Sigmoid"),
    "duodenum": ("Duodenum",),
    "pancreas": ("Pancreas",),
    "sacrum": ("Sacrum", "Bone_Sacrum"),
    "aorta": ("A_Aorta", "Aorta"),
    "inferior_vena_cava": ("V_Venacava_I", "IVC"),
    "body": ("External", "Body", "Skin", "BODY"),
    "seminal_vesicles": ("SeminalVes", "SeminalVesicles", "SV"),
    "heart": ("Heart",),
    "stomach": ("Stomach",),
    "spinal_cord": ("SpinalCord",),
}

# TotalSegmentator v1 names that differ from v2, and multi-part classes that are unions
_UNIONS = {
    "lung_left": ("lung_upper_lobe_left", "lung_lower_lobe_left"),
    "lung_right": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"),
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _build() -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, synonyms in _SINGLE_TG263.items():
        table[_key(canonical)] = canonical
        for synonym in synonyms:
            table[_key(synonym)] = canonical
    for stem, patterns in _PAIRED_TG263.items():
        for side, suffixes in _SIDES.items():
            canonical = f"{stem}_{side}"
            table[_key(canonical)] = canonical
            for pattern in patterns:
                for suffix in suffixes:
                    table[_key(pattern.format(s=suffix))] = canonical
    for canonical, parts in _UNIONS.items():
        for part in parts:
            table[_key(part)] = canonical
    return table


_TABLE = _build()
_VERTEBRA = re.compile(r"^(?:vertebrae?|bone_?vertebra|vb)[_ ]?([cstl])(\d{1,2})$", re.IGNORECASE)


def canonical_name(name: str) -> str:
    """The canonical anatomy name of a structure / class name (unknown names come back lower-cased)."""
    match = _VERTEBRA.match(name.strip())
    if match:
        return f"vertebrae_{match.group(1).upper()}{int(match.group(2))}"
    return _TABLE.get(_key(name), name.strip().lower())
