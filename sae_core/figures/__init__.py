"""Pure plotly figure functions of snapshots and analysis results (no Streamlit)."""
