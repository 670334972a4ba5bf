from greentrainer.cli import main

raise SystemExit(main())
