from slm_swap.cli import main

main()
