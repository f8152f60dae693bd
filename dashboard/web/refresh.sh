#!/usr/bin/env bash
# Refreshes the charting library the dashboard embeds (dashboard/assets/)
# from the exact versions pinned in package.json and package-lock.json.
# Needs npm only when you run it: the binary embeds the committed copy.
# To move to a newer ECharts: edit the version in package.json, run
# `npm install` here to update the lock file, then this script, and test
# (go test ./dashboard/); docs/DASHBOARD.md has the steps.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
cp node_modules/echarts/dist/echarts.min.js ../assets/echarts.min.js
cp node_modules/echarts/LICENSE ../assets/echarts.LICENSE
cp node_modules/zrender/LICENSE ../assets/zrender.LICENSE
cp node_modules/echarts/NOTICE ../assets/echarts.NOTICE
sha256sum ../assets/echarts.min.js
