"""What people read and look at: the plan and summary in words, and the campaign report (plot, HTML, Markdown)."""

from .build import build_report
from .text import plan_text, summary_text

__all__ = ["build_report", "plan_text", "summary_text"]
