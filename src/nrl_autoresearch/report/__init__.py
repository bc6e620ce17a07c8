"""What people read and look at: the plan and summary in words, and the campaign report (plot, HTML, Markdown)."""

from nrl_autoresearch.report.build import build_report
from nrl_autoresearch.report.text import plan_text, summary_text

__all__ = ["build_report", "plan_text", "summary_text"]
