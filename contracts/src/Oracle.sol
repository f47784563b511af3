// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Oracle: the reported outcome of each binary market.
/// @notice A reporter reports each market's outcome once; `outcomeOf` tells whether it has been
/// reported and what it is.
contract Oracle {
    address public reporter;
    // 0: not reported, 1: reported false, 2: reported true.
    mapping(uint256 => uint8) private results;

    event OutcomeReported(uint256 indexed marketId, bool outcome);

    constructor() {
        reporter = msg.sender;
    }

    function report(uint256 marketId, bool outcome) external {
        require(msg.sender == reporter, "Oracle: caller is not the reporter");
        require(results[marketId] == 0, "Oracle: outcome already reported");
        results[marketId] = outcome ? 2 : 1;
        emit OutcomeReported(marketId, outcome);
    }

    function outcomeOf(uint256 marketId) external view returns (bool reported, bool outcome) {
        uint8 r = results[marketId];
        return (r != 0, r == 2);
    }
}
