"""Manufacturing analytics around the KPIs: alarms and rules, development projects,
predictive maintenance and the HTML report (each module imports its own libraries)."""
