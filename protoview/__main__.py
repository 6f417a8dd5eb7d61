from protoview.cli import main

raise SystemExit(main())
