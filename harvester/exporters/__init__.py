"""From stored images to datasets: tables, attribution, VPR layouts, pairs, shards, report."""
