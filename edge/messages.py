"""What the household is told when a local urgent rule fires: zh-CN first, then English.

The instructions follow the default clinical rule set (specs/clinical_rules.md):

* G1, level-2 hypoglycaemia: 15-20 g of fast-acting carbohydrate, re-check after 15 minutes
  ([ADA-6], [CN-T2DM]); call 120 when the person cannot eat or drink safely (level 3, G3).
* G6, glucose >= 33.3 mmol/L or a meter "HI": call 120 (HHS range, [Hyperglycemic-crises-2024]).
* B3, one reading >= 180/110 mmHg: sit quietly and re-measure after 1-5 minutes ([AHA-crisis]).
* B1/B2, confirmed >= 180/110: with symptoms call 120 (B1), without, contact the family doctor the
  same day (B2) ([CN-PHS-HTN], [AHA-crisis]). The gateway cannot know the symptoms, so the message
  names them and gives both paths.

Pure: constants and string formatting only.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BP_CONFIRMED",
    "BP_REMEASURE",
    "GLUCOSE_HIGH",
    "GLUCOSE_LOW",
    "SYMPTOMS_EN",
    "SYMPTOMS_ZH",
    "Bilingual",
]

Bilingual = tuple[str, str]
"""(zh-CN, English)."""

SYMPTOMS_ZH: Final = "胸痛、气短、剧烈头痛、意识模糊、肢体无力、看东西或说话异常"
SYMPTOMS_EN: Final = (
    "chest pain, shortness of breath, severe headache, confusion, weakness, "
    "or trouble seeing or speaking"
)

GLUCOSE_LOW: Final[Bilingual] = (
    "低血糖（{value}）：请立即进食15–20克快速碳水化合物（如约150毫升果汁、含糖饮料或葡萄糖片），"
    "15分钟后复测血糖；如仍低于3.9 mmol/L，请再次进食并复测。"
    "如意识不清或无法安全进食，请立即拨打120。",
    "Low blood sugar ({value}): take 15–20 g of fast-acting carbohydrate now (about 150 ml of "
    "juice or a sugary drink, or glucose tablets) and re-check in 15 minutes; if it is still "
    "below 3.9 mmol/L, eat again and re-check. If the person is confused or cannot eat or drink "
    "safely, call 120 now.",
)

GLUCOSE_HIGH: Final[Bilingual] = (
    "血糖极高（{value}）：请立即拨打120或前往急诊；等待期间可用新试纸复测一次，并少量多次饮水。",
    "Very high blood sugar ({value}): call 120 or go to the emergency department now; while "
    "waiting you may re-test once with a new strip and sip water.",
)

BP_REMEASURE: Final[Bilingual] = (
    f"血压很高（{{value}}）：请安静坐好，休息1–5分钟后再测一次。如有{SYMPTOMS_ZH}，请立即拨打120。",
    "Very high blood pressure ({value}): sit quietly, rest for 1–5 minutes, then measure again. "
    f"If there is {SYMPTOMS_EN}, call 120 now.",
)

BP_CONFIRMED: Final[Bilingual] = (
    f"复测血压仍然很高（{{value}}）：如有{SYMPTOMS_ZH}，请立即拨打120；"
    "如没有这些症状，请今天联系您的家庭医生。",
    f"Blood pressure is still very high on re-measuring ({{value}}): if there is {SYMPTOMS_EN}, "
    "call 120 now; if not, contact your family doctor today.",
)
