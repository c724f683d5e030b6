"""Response quality: an LLM-as-judge hook and its calibration against human labels.

    from genai_otel.quality import Judge, Rubric

    judge = Judge(openai.OpenAI(), "gpt-4o-mini", Rubric("helpfulness", "Does it answer the question?"),
                  sample_rate=0.1, seed=7)
    judge.score(question, answer, provider="openai", model="gpt-4o", response_id=completion.id)

`genai-otel calibrate FILE.csv` compares judge scores with human labels (Cohen's kappa).
"""

from genai_otel.quality.judge import Judge, JudgeStats, Rubric, parse_score

__all__ = ["Judge", "JudgeStats", "Rubric", "parse_score"]
