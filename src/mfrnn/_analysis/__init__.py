from .statistics import activity_summary as activity_summary
