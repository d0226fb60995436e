module beuss

go 1.19
