from ttapi_mcp.cli import main

raise SystemExit(main())
